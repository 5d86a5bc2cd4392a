"""FacePolicy training code: corpus generation, networks, training and evaluation. Never imported by the add-on."""
