# Types for the part of actions-toolkit that secrets-sync uses (the package ships none).

class Command:
    command: str
    message: str
    properties: dict[str, str]
    def __init__(self, command: str, properties: dict[str, str], message: str) -> None: ...

def escape_data(s: object) -> str: ...
def escape_property(s: object) -> str: ...
