"""What a data steward runs at home: the organisation's home and its spending file, reading an export, the
mapping, validation, pseudonyms, the release into a signed bundle, and explaining a bundle.
"""
