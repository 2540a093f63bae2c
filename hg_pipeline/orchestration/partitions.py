"""One Dagster partition per tenant; the key is the tenant id."""

from dagster import DynamicPartitionsDefinition

tenants_partitions = DynamicPartitionsDefinition(name="tenants")
