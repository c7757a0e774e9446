"""The first-boot screens (``phyllome-firstboot``): one module per screen, the app in app.py."""
