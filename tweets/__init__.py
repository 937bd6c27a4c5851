"""Pure tweet logic, free of I/O and Faust: payload formats, normalizing and filtering, topic
matching, oversize handling. The Faust agents, the sources, the replay and the tests share it."""
