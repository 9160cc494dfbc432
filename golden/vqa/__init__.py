"""The shapes-VQA task: a small Qwen2-VL trained on synthetic images and questions, and
the accuracy of its spiking conversions.

* :mod:`.data` -- images of coloured shapes on a grid, questions and answers, batches.
* :mod:`.model` -- the Qwen2-VL built for the task, checkpoints, accuracy.
* :mod:`.train` -- ``make train``: train the model.
* :mod:`.evaluate` -- ``make eval``: float vs spiking accuracy, MED, MSTS, MiniLM check.
"""
