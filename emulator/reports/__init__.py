"""What a run leaves behind: the summary (JSON, schema-versioned), JUnit XML, the text table
and the event log, all built from a run's result; nothing here runs anything."""
