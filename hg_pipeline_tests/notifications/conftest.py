from hg_pipeline_tests.smtp import closed_port, smtp_pki, smtp_server  # noqa: F401  (fixtures)
