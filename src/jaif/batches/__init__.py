"""The Batch API (/v1/batches): a file of requests run in the background through the gateway, with their
answers in an output file and their failures in an error file (docs/batches.md)."""
