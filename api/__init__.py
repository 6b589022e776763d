"""The api package: the HTTP doors people use; it arrives in a later issue."""
