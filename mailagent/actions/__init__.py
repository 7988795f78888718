"""Actions the agent may take for a customer: lookups, and side effects that run only once approved."""
