from setuptools import find_packages, setup

setup(
    name="hg_pipeline",
    version="0.1.0",
    description="PSA-to-HighGround data pipeline (ConnectWise Manage, HaloPSA, Autotask) on Dagster",
    packages=find_packages(exclude=["hg_pipeline_tests*"]),
    package_data={"hg_pipeline": ["mapping/*.yaml", "mapping/smart/labelled.csv", "imports/schemas/*.json", "imports/examples/*", "warehouse/migrations/*.py",
                                  "warehouse/migrations/*.mako", "warehouse/migrations/versions/*.py"]},
    python_requires=">=3.11",
    install_requires=[
        "dagster>=1.13,<1.14",
        "dagster-webserver>=1.13,<1.14",
        "dagster-dg-cli>=1.13,<1.14",
        "dagster-postgres>=0.29,<0.30",
        "psycopg2-binary>=2.9",  # dagster-postgres speaks psycopg2; the warehouse uses psycopg 3
        "psycopg[binary]>=3.2",
        "pandas>=2.2",
        "sqlalchemy>=2.0",
        "requests>=2.31",
        "great-expectations>=1.3,<2",
        "alembic>=1.13",
        "pyyaml>=6",
        "orjson>=3.9",  # staging writes and reads hundreds of thousands of JSON values a sync
        "fastapi>=0.110",  # the import API (hg-pipeline serve-import-api)
        "uvicorn>=0.29",
    ],
    # cryptography: the simulator's --tls certificate (pyconnectwise only speaks https)
    extras_require={"dev": ["pytest>=8", "aiosmtpd>=1.4", "pyconnectwise>=0.6", "django-autotask==1.16.0", "cryptography>=41", "jsonschema>=4"],
                    # `hg-pipeline bench` compares with dlt when installed; never a runtime dependency.
                    "bench": ["dlt[postgres]"]},
    entry_points={"console_scripts": ["hg-pipeline=hg_pipeline.cli:run"]},
)
