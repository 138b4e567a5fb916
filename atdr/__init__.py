"""atdr: AudioTagging Done Right, reproduced.

Audio taggers (CRNN, CNN+Transformer, AST, PSLA, ResNet, FNet, linear), the paper's training
recipes and evaluation, and the data pipeline in AudioSet's own formats.
"""

__version__ = "0.1.0"
