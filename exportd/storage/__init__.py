"""S3: where export files live. Streaming multipart writes, presigned reads, cleanup; S3's own
errors become `StorageUnavailable` here, so callers never see botocore."""
