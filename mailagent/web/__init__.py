"""The HTTP app: health and metrics, helpdesk webhooks, and the review site under `/review`."""
