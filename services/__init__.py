"""New services carved out of the monolith, each deployable under uvicorn or as a Lambda."""
