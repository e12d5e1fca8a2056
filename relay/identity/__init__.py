"""Who a client is: credentials, tokens, authenticators, ids."""
