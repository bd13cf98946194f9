"""What one stack deploys: the release, what an update changes, and the registry's layout."""
