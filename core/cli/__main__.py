from berth.core.cli import main

main()
