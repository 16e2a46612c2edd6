"""Chat in the portal: conversations with a project's models in the browser (docs/chat.md)."""
