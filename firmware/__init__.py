"""spikemllm.firmware"""
