from berth.core.cli.main import main

main()
