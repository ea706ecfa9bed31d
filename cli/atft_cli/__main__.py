from atft_cli.main import main

main()
