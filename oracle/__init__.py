"""The oracle package: feeds from the outside world; it arrives in a later issue."""
