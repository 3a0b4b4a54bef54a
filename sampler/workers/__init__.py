"""Several worker processes in one daemon (the `workers` key): a supervisor, the workers it starts,
what each worker gets of the config, and the admin endpoint that speaks for all of them."""
