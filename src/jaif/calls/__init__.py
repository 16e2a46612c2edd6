"""Access calls (Playground, Fast Lane, Large Scale, ...) and their eligibility rules."""
