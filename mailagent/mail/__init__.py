"""Mail in and out: IMAP polling and IDLE, MIME parsing, loop detection, SMTP delivery."""
