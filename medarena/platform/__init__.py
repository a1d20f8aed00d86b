"""Organizing and running challenges: definitions, case store, database, runner, scheduler, submissions."""
