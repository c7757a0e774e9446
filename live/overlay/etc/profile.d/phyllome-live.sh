# The live medium's shells say how to get the installer back.
case "$(tty 2>/dev/null)" in
/dev/tty[0-9]*|/dev/ttyS[0-9]*)
    echo "Phyllome OS live medium. Start the installer again: phyllome-install (Alt+F1 / Alt+F2 switch consoles)." ;;
esac
