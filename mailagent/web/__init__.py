"""The HTTP app: health and metrics now; helpdesk webhooks and the review page build on it."""
