// Placeholder until the ToolEnv sources land; delete once the module has files.
