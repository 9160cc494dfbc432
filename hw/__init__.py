"""spikemllm.hw"""
