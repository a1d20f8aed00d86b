"""File loaders: read a task's reference and prediction files into the roles its evaluator takes."""
