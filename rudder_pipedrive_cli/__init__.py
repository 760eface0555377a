"""rpd: replay RudderStack-format analytics events to Pipedrive."""

__version__ = "0.1.0"
