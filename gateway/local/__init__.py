"""A local stand-in for the Lambda Invoke API and the functions it runs."""
