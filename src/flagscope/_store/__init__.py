"""The store: records, values and their one equality rule, the bounded ring."""
