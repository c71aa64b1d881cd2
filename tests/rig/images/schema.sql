-- Dify's credential tables, as in langgenius/dify api/models/provider.py (1.x), plus the
-- encrypted_config column that provider_models carried in older releases.
CREATE TABLE provider_model_credentials (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    provider_name varchar(255) NOT NULL,
    model_name varchar(255) NOT NULL,
    model_type varchar(40) NOT NULL,
    credential_name varchar(255) NOT NULL,
    encrypted_config text NOT NULL,
    created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX provider_model_credential_tenant_provider_model_idx
    ON provider_model_credentials (tenant_id, provider_name, model_name, model_type);

CREATE TABLE provider_models (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    provider_name varchar(255) NOT NULL,
    model_name varchar(255) NOT NULL,
    model_type varchar(40) NOT NULL,
    encrypted_config text,
    credential_id uuid,
    is_valid boolean NOT NULL DEFAULT false,
    created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT unique_provider_model_name UNIQUE (tenant_id, provider_name, model_name, model_type)
);
CREATE INDEX provider_model_tenant_id_provider_idx ON provider_models (tenant_id, provider_name);
