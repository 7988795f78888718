"""mailagent: self-hosted AI-assisted customer support over email and helpdesks."""
