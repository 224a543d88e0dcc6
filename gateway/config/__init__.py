"""The route table's configuration: the frozen model, its loader and checks, units, stores."""
