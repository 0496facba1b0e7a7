"""What a person looks at: plots of a search."""
