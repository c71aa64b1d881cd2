"""Block Kit rendering. Everything here is pure: data in, (text, blocks) out."""
