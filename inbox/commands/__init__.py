"""The sub-commands of ``inbox``, by what they work on."""
