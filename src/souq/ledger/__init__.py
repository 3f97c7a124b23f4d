"""Money after the sale: the ledger, refunds, disputes and the loss policy."""
