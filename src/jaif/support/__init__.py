"""The support desk: requests for expert help, with replies between users and operators."""
