"""The former home of the backends; `base` remains so plugins written against it keep working."""
