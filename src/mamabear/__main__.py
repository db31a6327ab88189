from mamabear.cli import main

main()
