-- Running workflows with a failed step: the few the workers' stop sweep looks at every second
-- (services/worker/workflow-stopper.ts), found without reading every running workflow.
CREATE INDEX IF NOT EXISTS workflows_failing_idx ON workflows (id) WHERE finished_at IS NULL AND failed > 0;
