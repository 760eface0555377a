from rudder_pipedrive_cli.cli.main import app

app(prog_name="rpd")
