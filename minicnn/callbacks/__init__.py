"""Callbacks: code that ``fit`` calls at the start and end of training, of each epoch and around each step
(Keras's hooks, Keras's callbacks), and the ``History`` that ``fit`` returns.

==========================  ===============================================================================
``Callback``                the protocol: ``on_train_begin``, ``on_epoch_begin``, ``on_train_batch_begin``,
                            ``on_train_batch_end``, ``on_epoch_end``, ``on_train_end``; ``self.model``
``History``                 what ``fit`` returns: per-epoch lists of every metric
``EarlyStopping``           stop when a metric stops improving (optionally restoring the best weights)
``ModelCheckpoint``         save the model or its weights every epoch, or only the best
``CSVLogger``               one CSV row per epoch
``LearningRateScheduler``   set the learning rate each epoch from ``schedule(epoch, lr)``
``ReduceLROnPlateau``       divide the learning rate when a metric stops improving
``TensorBoard``             scalar event files for TensorBoard (with tensorboardX)
``LambdaCallback``          a callback from plain functions
``GradientNormRecorder``    every parameter's gradient norm, every few steps
==========================  ===============================================================================
"""

from .base import Callback, GradientNormRecorder, History, LambdaCallback, batch_callbacks
from .early_stopping import EarlyStopping
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau
from .loggers import CSVLogger, TensorBoard
from .model_checkpoint import ModelCheckpoint

__all__ = [
    "batch_callbacks",
    "Callback",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "CSVLogger",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
    "TensorBoard",
    "LambdaCallback",
    "GradientNormRecorder",
]
