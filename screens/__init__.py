"""Everything Textual: the installer and first-boot apps, their screens, widgets and styles."""
