//! One SDK client per region, built on first use from one base configuration, so an
//! endpoint override (local emulators) applies to every region alike.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::{Region, SdkConfig};

pub struct PerRegion<C> {
    base: SdkConfig,
    make: fn(&SdkConfig) -> C,
    clients: Mutex<HashMap<String, C>>,
}

impl<C: Clone> PerRegion<C> {
    /// `make` is the service's `Client::new`.
    pub fn new(base: SdkConfig, make: fn(&SdkConfig) -> C) -> Self {
        PerRegion {
            base,
            make,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, region: &str) -> C {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let conf = self
                    .base
                    .to_builder()
                    .region(Region::new(region.to_owned()))
                    .build();
                (self.make)(&conf)
            })
            .clone()
    }
}
