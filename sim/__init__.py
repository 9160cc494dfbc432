"""spikemllm.sim"""
