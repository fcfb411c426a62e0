"""`python -m evoprompt.bench`: the same as `python -m evoprompt bench` (scripts and measurement notes call it so)."""
from evoprompt.commands.bench import main

if __name__ == "__main__":
    main()
