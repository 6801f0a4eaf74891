"""The output formats, named once for the reporters and the command line."""

OUTPUT_FORMATS = ("text", "json", "sarif", "github", "gitlab")
