"""The pure core: events, field tables, plans. No network, files, terminals or databases here."""
