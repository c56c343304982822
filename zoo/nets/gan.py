"""SRGAN: the paper's generator/discriminator pair trained with a custom ``train_step``.

de Haan et al., Sci. Rep. 9, 12050 (2019), Methods: the generator minimises Eq. 1
(L1 + alpha TV + beta (1 - D(G(x)))^2), the discriminator Eq. 4 (least squares); the
discriminator is updated once every four generator updates. Following BasicSR, an exponential
moving average (EMA) of the generator's weights is kept and is what gets exported.

Pattern: the Keras 3 guide "Customizing what happens in fit() with TensorFlow" (GAN example):
trackers made in ``__init__``, a ``metrics`` property, ``compile(g_optimizer, d_optimizer, ...)``
calling ``super().compile()``, ``get_compile_config``/``compile_from_config``, a
``keras.random.SeedGenerator``. Which steps update the discriminator is decided on the host
between two traced steps (:meth:`SRGAN.make_train_function`), so each graph is free of control
flow and runs unchanged inside ``tf.distribute.MirroredStrategy`` and under ``mixed_bfloat16``.
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from zoo.nets import losses

_LOSS_METRICS = ("g_loss", "l1", "tv", "adversarial", "share_l1", "share_tv", "share_adversarial")


def _float32_clone(model: keras.Model) -> keras.Model:
    """A copy of a functional model whose layers all compute in float32 (for export)."""

    def clone_layer(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone_layer)


@keras.saving.register_keras_serializable(package="semzoo")
class SRGAN(keras.Model):
    """Generator + discriminator + EMA generator, trained with paper Eqs. 1 and 4.

    Parameters
    ----------
    generator, discriminator : keras.Model
        From :func:`zoo.nets.generator.build_generator` and
        :func:`zoo.nets.discriminator.build_discriminator`.
    alpha, beta : float
        Weights of total variation and of the adversarial term in Eq. 1.
    d_every : int
        The discriminator is updated on generator steps 0, d_every, 2 d_every, ... (paper: 4).
    ema_decay : float
        Decay of the generator weights' moving average; early on the effective decay is
        ``min(ema_decay, (1 + t) / (10 + t))`` (as tf.train.ExponentialMovingAverage with
        ``num_updates``) so that short runs are not dominated by the random initialisation.
    seed : int
        Seeds the SeedGenerator used for the discriminator's label noise.
    label_noise : float
        Uniform noise added to the real/fake targets of Eq. 4 (the Keras guide's trick);
        0 disables it (the default, as the paper).
    gap_weight, contact_weight : float
        Batches of ``(lr, hr, focus)`` weight the L1 by ``1 + gap_weight`` where the mask of
        :mod:`zoo.data.focus` marks a narrow gap (``GAP``) and ``1 + contact_weight`` where it
        marks a contact (``CONTACT``); 0 (the default, the paper's loss) or ``(lr, hr)``
        batches keep the plain L1.
    pixel_loss : "l1" or "mse"
        The pixel term of Eq. 1: the paper's L1 (default) or the mean squared error.
    """

    def __init__(self, generator, discriminator, *, alpha=0.08, beta=6.0, d_every=4,
                 ema_decay=0.999, seed=0, label_noise=0.0, gap_weight=0.0,
                 contact_weight=0.0, pixel_loss="l1", **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.d_every = int(d_every)
        self.ema_decay = float(ema_decay)
        self.seed = int(seed)
        self.label_noise = float(label_noise)
        self.gap_weight = float(gap_weight)
        self.contact_weight = float(contact_weight)
        if pixel_loss not in losses.PIXEL_LOSSES:
            raise ValueError(f"pixel_loss must be 'l1' or 'mse', got {pixel_loss!r}")
        self.pixel_loss = str(pixel_loss)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        # The EMA weights live in a twin of the generator, so validation and export use them
        # directly; it is never trained (Keras' own EMA only applies to self.optimizer).
        self.ema_generator = keras.models.clone_model(generator)
        self.ema_generator.name = "ema_generator"
        self.ema_generator.trainable = False
        # Generator steps taken; drives the discriminator gate and the EMA warm-up.
        # "only_first_replica": every replica holds the same value and takes the same step.
        self.step_counter = keras.Variable(0, dtype="int64", trainable=False, name="generator_step",
                                           aggregation="only_first_replica")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in _LOSS_METRICS}
        self.trackers["d_loss"] = keras.metrics.Mean(name="d_loss")
        self.trackers["d_real"] = keras.metrics.Mean(name="d_real")
        self.trackers["d_fake"] = keras.metrics.Mean(name="d_fake")
        self.val_trackers = {
            "l1": keras.metrics.MeanAbsoluteError(name="l1"),
            "psnr": keras.metrics.Mean(name="psnr"),
            "ssim": keras.metrics.Mean(name="ssim"),
        }

    # -- Keras plumbing -----------------------------------------------------------------------

    @property
    def metrics(self):
        # Listed here so Keras resets them each epoch and reports them in fit/evaluate logs.
        return list(self.trackers.values()) + list(self.val_trackers.values())

    def build(self, input_shape):
        if not self.generator.built:
            self.generator.build(input_shape)
        n, h, w, c = input_shape
        self.discriminator.build((n, None if h is None else 2 * h, None if w is None else 2 * w, c))
        self.ema_generator.build(input_shape)
        self.ema_generator.set_weights(self.generator.get_weights())
        super().build(input_shape)

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def compile(self, g_optimizer, d_optimizer, *, jit_compile=False, **kwargs):
        """Set the two optimizers (paper: Adam for both) and build their state.

        Both optimizers are built here, on their own networks' variables, before ``fit``: the
        discriminator's is otherwise first touched in a traced step that may not run at once,
        and Keras would build the generator's on every trainable variable of the pair.
        """
        if kwargs.get("steps_per_execution", 1) != 1:
            raise ValueError("SRGAN gates the discriminator per step: steps_per_execution must be 1")
        super().compile(optimizer=g_optimizer, jit_compile=jit_compile, **kwargs)
        self.g_optimizer = self.optimizer
        self.d_optimizer = d_optimizer
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self):
        return {
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
        }

    def compile_from_config(self, config):
        self.compile(
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
        )

    def get_config(self):
        return {
            "name": self.name,
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "alpha": self.alpha,
            "beta": self.beta,
            "d_every": self.d_every,
            "ema_decay": self.ema_decay,
            "seed": self.seed,
            "label_noise": self.label_noise,
            "gap_weight": self.gap_weight,
            "contact_weight": self.contact_weight,
            "pixel_loss": self.pixel_loss,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"))
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"))
        return cls(generator, discriminator, **config)

    # -- training -----------------------------------------------------------------------------

    def _discriminator_step(self, lr, hr):
        """One update of D with Eq. 4; returns (d_loss, mean D(z), mean D(G(x)))."""
        enhanced = self.generator(lr, training=False)
        with tf.GradientTape() as tape:
            d_real = tf.cast(self.discriminator(hr, training=True), tf.float32)
            d_fake = tf.cast(self.discriminator(enhanced, training=True), tf.float32)
            # Targets shaped like D's output: (N, 1) for the paper's head, (N, h, w, 1) per cell
            # for the patch head (see zoo.nets.discriminator).
            real_target = tf.ones_like(d_real)
            fake_target = tf.zeros_like(d_fake)
            if self.label_noise > 0:
                real_target -= self.label_noise * keras.random.uniform(tf.shape(d_real), seed=self.seed_generator)
                fake_target += self.label_noise * keras.random.uniform(tf.shape(d_fake), seed=self.seed_generator)
            # Eq. 4 with (optionally noisy) targets 1 for z and 0 for G(x).
            d_loss = tf.reduce_mean(tf.square(d_fake - fake_target)) + tf.reduce_mean(tf.square(real_target - d_real))
            scaled = self.d_optimizer.scale_loss(d_loss)
        grads = tape.gradient(scaled, self.discriminator.trainable_variables)
        self.d_optimizer.apply(grads, self.discriminator.trainable_variables)
        return d_loss, tf.reduce_mean(d_real), tf.reduce_mean(d_fake)

    def train_discriminator(self, lr, hr):
        """One update of D alone with Eq. 4, the generator fixed; returns (d_loss, D(z), D(G(x))).

        For warming up a fresh discriminator before fine-tuning a trained generator (the zoo
        keeps only generators), so that its first gradients to G are not noise.
        """
        return self._discriminator_step(lr, tf.cast(hr, tf.float32))

    def _update_ema(self):
        step = tf.cast(self.step_counter, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        for ema, weight in zip(self.ema_generator.weights, self.generator.weights):
            ema.assign(decay * ema + (1.0 - decay) * tf.cast(weight, ema.dtype))

    def make_train_function(self, force=False):
        """Two traced steps, with and without the discriminator update, chosen per call.

        The paper updates D on every ``d_every``-th generator step. Gating inside the graph with
        ``tf.cond`` would put the optimizer's cross-replica synchronisation (a ``merge_call``)
        inside a branch, which tf.distribute forbids; choosing between two traced functions on
        the host keeps each graph free of control flow, works under any strategy, and skips
        D's cost on the other steps. Requires ``steps_per_execution == 1`` (checked in compile).
        """
        if self.train_function is not None and not force:
            return self.train_function
        with_d = self._make_function(functools.partial(self._train_step, update_discriminator=True))
        without_d = self._make_function(functools.partial(self._train_step, update_discriminator=False))

        def train_function(iterator):
            if int(self.step_counter.numpy()) % self.d_every == 0:
                return with_d(iterator)
            return without_d(iterator)

        self.train_function = train_function
        return train_function

    def train_step(self, data):
        """One generator step, with a discriminator step first when the step counter says so.

        Decides in Python, so it only traces inside a tf.function when ``step_counter`` is
        read eagerly; ``fit`` uses :meth:`make_train_function` instead, which traces both.
        """
        update = int(self.step_counter.numpy()) % self.d_every == 0
        return self._train_step(data, update_discriminator=update)

    def _train_step(self, data, *, update_discriminator: bool):
        lr, hr = data[0], data[1]
        hr = tf.cast(hr, tf.float32)
        weights = None
        if len(data) > 2 and (self.gap_weight > 0 or self.contact_weight > 0):
            weights = losses.focus_weights(data[2], self.gap_weight, self.contact_weight)
        if update_discriminator:
            d_loss, d_real, _ = self._discriminator_step(lr, hr)
            self.trackers["d_loss"].update_state(d_loss)
            self.trackers["d_real"].update_state(d_real)

        with tf.GradientTape() as tape:
            enhanced = tf.cast(self.generator(lr, training=True), tf.float32)
            d_fake = self.discriminator(enhanced, training=False)
            terms = losses.generator_loss(enhanced, hr, d_fake, alpha=self.alpha, beta=self.beta,
                                          weights=weights, pixel_loss=self.pixel_loss)
            scaled = self.g_optimizer.scale_loss(terms["total"])
        grads = tape.gradient(scaled, self.generator.trainable_variables)
        self.g_optimizer.apply(grads, self.generator.trainable_variables)
        self._update_ema()
        self.step_counter.assign_add(1)

        self.trackers["g_loss"].update_state(terms["total"])
        for name in ("l1", "tv", "adversarial", "share_l1", "share_tv", "share_adversarial"):
            self.trackers[name].update_state(terms[name])
        self.trackers["d_fake"].update_state(tf.reduce_mean(tf.cast(d_fake, tf.float32)))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def test_step(self, data):
        """Validation of the EMA generator (the one exported): L1, PSNR and SSIM.

        PSNR and SSIM are computed after mapping each target patch's [min, max] to [0, 1] (and
        the output with the same affine map), since the patches are mean/std normalised.
        """
        lr, hr = data[0], data[1]
        hr = tf.cast(hr, tf.float32)
        enhanced = tf.cast(self.ema_generator(lr, training=False), tf.float32)
        self.val_trackers["l1"].update_state(hr, enhanced)
        lo = tf.reduce_min(hr, axis=(1, 2, 3), keepdims=True)
        span = tf.maximum(tf.reduce_max(hr, axis=(1, 2, 3), keepdims=True) - lo, 1e-6)
        hr01 = (hr - lo) / span
        sr01 = tf.clip_by_value((enhanced - lo) / span, 0.0, 1.0)
        self.val_trackers["psnr"].update_state(tf.image.psnr(sr01, hr01, max_val=1.0))
        self.val_trackers["ssim"].update_state(tf.image.ssim(sr01, hr01, max_val=1.0))
        return {name: tracker.result() for name, tracker in self.val_trackers.items()}

    # -- results ------------------------------------------------------------------------------

    def averaged_generator(self) -> keras.Model:
        """A standalone float32 generator holding the EMA weights (what gets exported)."""
        model = _float32_clone(self.ema_generator)
        model.set_weights([w.numpy() for w in self.ema_generator.weights])
        model.name = "generator"
        return model
