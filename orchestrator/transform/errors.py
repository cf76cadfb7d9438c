"""The errors of batch transform's data handling, in the product's error tree.

::

    PermanentError (orchestrator.errors)
    ├── ValidationError
    │   ├── JsonPathError         an InputFilter/OutputFilter that does not parse
    │   └── DataProcessingError   DataProcessing over records neither CSV nor JSON
    └── TransformDataError        the data cannot be processed as asked (fails the file)
        ├── NothingSelected       a filter selects nothing from a record
        ├── RecordError           corrupt RecordIO/TFRecord framing
        ├── BadRecord             a record is not the CSV/JSON its content type says
        ├── PayloadTooLarge       one record alone is over MaxPayloadInMB
        ├── OutputMismatch        the model answered a different number of records
        └── ManifestError         a ManifestFile that does not parse

Every one is also a ``ValueError``; each is defined in the module that raises it. Messages
name the position, the record or the field; the runner adds the file (and the record number
where the error does not know it).
"""

from __future__ import annotations

from orchestrator.errors import PermanentError


class TransformDataError(PermanentError, ValueError):
    """The job's data cannot be processed as asked: a record, a model's answer or a file."""
